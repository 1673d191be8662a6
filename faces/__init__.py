"""Faces in a member's photos: found, described and compared with dlib's models (torch- and discord-free).

The bot checks each photo at intake with it and the trainer its data folder and its samples.
"""

from faces.detect import Face, find_faces
from faces.measure import SAME_PERSON, distance, face_share, identity_of, sharpness

__all__ = ["SAME_PERSON", "Face", "distance", "face_share", "find_faces", "identity_of", "sharpness"]
