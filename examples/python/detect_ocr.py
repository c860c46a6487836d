"""Detects the objects and reads the text of one image through florence2_client, and prints both.

    PYTHONPATH=clients/python python3 examples/python/detect_ocr.py examples/images/street.jpg

The server address comes from $FLORENCE2_ADDRESS, else 127.0.0.1:50051.
"""

import os
import sys

from florence2_client import Florence2Client, Florence2Error


def main(argv: list) -> int:
    if len(argv) != 2:
        print("usage: detect_ocr.py IMAGE", file=sys.stderr)
        return 2
    image = argv[1]
    address = os.environ.get("FLORENCE2_ADDRESS") or "127.0.0.1:50051"
    with Florence2Client(address, default_timeout=60) as client:
        try:
            client.wait_for_ready(timeout=10)
            detection = client.detect(image)
            print(f"{len(detection.boxes)} object(s) in {image}:")
            for box in detection.boxes:
                print(f"  {box.label} [{box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}]")
            # with_regions=True would give each text line with its quadrilateral instead.
            print(f"text: {client.ocr(image).text!r}")
        except Florence2Error as e:
            # One class per gRPC status, e.g. InvalidArgumentError with .field for a bad request.
            print(f"{type(e).__name__}: {e.details}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
