"""Regenerate reference_landmarks.json with MediaPipe's own legacy graphs (run in a mediapipe==0.10.21
environment: numpy<2, protobuf<5; not part of the test suite, which must not need that version).

    python -m venv /tmp/mp21 && /tmp/mp21/bin/pip install mediapipe==0.10.21
    /tmp/mp21/bin/python tests/data/tracking/make_reference.py
"""
import json
from pathlib import Path

import cv2
import mediapipe as mp

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent / "images"


def rgb(name):
    return cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)


def main():
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        found = pose.process(rgb("basketball1.png")).pose_landmarks.landmark
        body = [[round(p.x, 5), round(p.y, 5), round(p.z, 5), round(p.visibility, 5)] for p in found]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        found = mesh.process(rgb("astronaut_face.jpg")).multi_face_landmarks[0].landmark
        face = [[round(p.x, 5), round(p.y, 5), round(p.z, 5)] for p in found]
    data = json.loads((HERE / "reference_landmarks.json").read_text())
    data["pose"]["landmarks"], data["face"]["landmarks"] = body, face
    (HERE / "reference_landmarks.json").write_text(json.dumps(data, indent=0))


if __name__ == "__main__":
    main()
