"""Runs MediaPipe's bundled models for ``analytics_tasks.py``, inside the task venv.

MediaPipe 0.10.14 (the last release whose wheel bundles the ``mp.solutions`` TFLite
models) cannot share the codec's environment: it requires ``opencv-contrib-python``,
which writes the same ``cv2`` package as the ``opencv-python-headless`` that EasyOCR
requires, and it pins ``protobuf<5`` and brings JAX. So it lives in its own venv
(``benchmarks/.venv-tasks``, see benchmarks/README.md) and this script, which imports only
NumPy and MediaPipe, serves the benchmark over pipes.

Protocol: the benchmark writes one line per request on stdin, ``IN.npz OUT.npz``. IN holds
uint8 HxWx3 images named ``image0``, ``image1``, ...; the worker writes OUT with, per image
``i``:

* ``faces{i}``: (K, 5) float32, face boxes ``x0, y0, x1, y1`` in pixels and score
  (face detection, full-range model, confidence >= 0.5);
* ``person{i}``: HxW bool, selfie (person) segmentation probability > 0.5 (general model);
* ``pose{i}``: (33, 3) float32 landmarks ``x, y`` in pixels and visibility, or (0, 3) when
  no pose is found (pose landmarker, static images, complexity 1);

then answers ``ok`` on stdout (``error: ...`` on failure). An empty line or end of input
stops it. Library logging goes to stderr, so stdout carries only the answers.
"""
from __future__ import annotations

import os
import sys

FACE_CONFIDENCE = 0.5
MASK_THRESHOLD = 0.5


def main() -> int:
    # Keep the protocol channel clean: whatever the libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import numpy as np
    import mediapipe as mp

    solutions = mp.solutions
    faces = solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=FACE_CONFIDENCE)
    person = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    pose = solutions.pose.Pose(static_image_mode=True, model_complexity=1)
    answers.write(f"ready mediapipe {mp.__version__}\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            break
        try:
            source, target = line.split()
            results = {}
            with np.load(source) as batch:
                for index in range(len(batch.files)):
                    image = np.ascontiguousarray(batch[f"image{index}"])
                    height, width = image.shape[:2]
                    boxes = []
                    for detection in faces.process(image).detections or []:
                        box = detection.location_data.relative_bounding_box
                        boxes.append([box.xmin * width, box.ymin * height, (box.xmin + box.width) * width,
                                      (box.ymin + box.height) * height, detection.score[0]])
                    results[f"faces{index}"] = np.array(boxes, np.float32).reshape(-1, 5)
                    results[f"person{index}"] = person.process(image).segmentation_mask > MASK_THRESHOLD
                    landmarks = pose.process(image).pose_landmarks
                    points = [] if landmarks is None else [
                        [mark.x * width, mark.y * height, mark.visibility] for mark in landmarks.landmark]
                    results[f"pose{index}"] = np.array(points, np.float32).reshape(-1, 3)
            temporary = target + ".tmp.npz"
            np.savez_compressed(temporary, **results)
            os.replace(temporary, target)
            answers.write("ok\n")
        except Exception as error:  # report and keep serving: the benchmark decides
            answers.write(f"error: {type(error).__name__}: {error}\n".replace("\n", " ").rstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
