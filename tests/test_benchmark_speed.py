"""benchmarks/speed.py --memory: whole-process peak RSS against the stated bound."""
import sys

from benchmarks import speed


def test_the_bound_is_a_base_plus_bytes_per_pixel():
    assert speed.memory_bound_mib(0) == speed.MEMORY_BOUND_BASE / 2**20
    assert speed.memory_bound_mib(2**20) == (speed.MEMORY_BOUND_BASE + speed.MEMORY_BOUND_PER_PIXEL * 2**20) / 2**20


def test_a_child_is_measured_alone():
    """wait4 gives each child's own peak, not the largest of all children so far."""
    big = speed._run_measured([sys.executable, "-c", "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096])"])
    small = speed._run_measured([sys.executable, "-c", "pass"])
    assert big["peak_rss_mib"] >= 300 > small["peak_rss_mib"]
    failed = speed._run_measured([sys.executable, "-c", "raise SystemExit('no such thing')"])
    assert failed == {"error": ["no such thing"]}


def test_memory_rows_of_whole_processes_with_the_bound_and_a_verdict(tiny_model):
    args = speed.parse_args(["--memory", "--memory-sizes", "96x64,128x96", "--memory-runs", "1",
                             "--weights", tiny_model.path, "--threads", "1"])
    result = speed.bench_process_memory(args)
    rows = result["rows"]
    assert [(row["image"], row["operation"]) for row in rows] == [
        ("96x64", "encode"), ("96x64", "decode"), ("128x96", "encode"), ("128x96", "decode")]
    for row in rows:
        assert "error" not in row, row
        assert row["bound_mib"] == speed.memory_bound_mib(row["pixels"])
        assert row["met"] == (row["peak_rss_mib"] <= row["bound_mib"])
        assert "-m ugcodec" in row["command"] and "--max-pixels 0" in row["command"]
    assert set(result["per_extra_pixel"]) == {"encode", "decode"}
    report = speed.report({"model": "tiny", "environment": {"torch_threads": 1, "processor": "cpu", "cpu_count": 1},
                           "runs": 1, "process_memory": result})
    assert "bytes per pixel" in report and report.count("| met ") + report.count("| NOT MET ") == 4


def test_large_image_children_are_measured_apart_from_this_process(tiny_model):
    """A child started straight from the benchmark would report at least the benchmark's
    own memory (Linux keeps the peak from before ``exec``); the rows must not."""
    import resource

    ballast = bytearray(1 << 30)
    ballast[:: 1 << 12] = b"x" * len(ballast[:: 1 << 12])  # resident, not just reserved
    own_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args = speed.parse_args(["--large", "--large-size", "64x48", "--memory-runs", "1",
                             "--weights", tiny_model.path, "--threads", "1"])
    rows = speed.bench_memory(args)["rows"]
    del ballast
    assert [row["operation"] for row in rows] == ["ugc-encode", "ugc-decode", "compressai-encode", "compressai-decode"]
    for row in rows:
        assert "error" not in row, row
        assert row["rss_before_mib"] <= row["peak_rss_mib"] < own_peak_mib - 512, (row, own_peak_mib)


def test_the_report_says_which_precision_ugc_ran_in_and_whether_the_cpu_has_amx():
    from benchmarks import speed

    environment = {"torch_threads": 1, "processor": "cpu", "cpu_count": 2}
    assert "AMX" not in speed.report({"model": "m", "environment": environment, "runs": 1}).splitlines()[1]
    for amx, precision, word in ((False, "float32", "no AMX tiles"), (True, "bfloat16", "AMX tiles")):
        line = speed.report({"model": "m", "environment": {**environment, "amx": amx}, "runs": 1}).splitlines()[1]
        assert line.endswith(word)
        note = speed.precision_note({"precision": precision})
        assert note.startswith("ugc ran in " + ("float32" if precision == "float32" else "its default precision"))
    assert speed.precision_note({}) is None  # a report from before the field: no claim


def test_reports_name_the_cpu(tmp_path):
    from benchmarks.bench_common import cpu_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\n"
                       "model name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: Other\n")
    assert cpu_description(str(cpuinfo)) == "AMD EPYC (family 23, model 1)"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n")
    assert cpu_description(str(cpuinfo)) == "Some CPU"
    assert cpu_description(str(tmp_path / "missing"))  # the platform's name instead
    result = {"model": "m", "runs": 1, "environment": {"torch_threads": 1, "processor": "x86_64", "cpu_count": 2,
                                                       "cpu": "AMD EPYC (family 23, model 1)", "amx": False}}
    assert "CPU: AMD EPYC (family 23, model 1) x2, no AMX tiles" in speed.report(result)
