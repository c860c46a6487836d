"""florence2_client against a real server on scripted synthetic models (test/polyglot/python-client.test.ts
starts them). The car model answers every prompt with CAR_TEXT; the OCR model with two text lines.

Environment: FLORENCE2_CAR_ADDRESS, FLORENCE2_OCR_ADDRESS (host:port), FLORENCE2_IMAGE (a 640x480 PNG);
FLORENCE2_TLS_ADDRESS, FLORENCE2_TLS_CA, FLORENCE2_TOKEN for a car server with TLS and a bearer token.
Without them the tests are skipped (the mocha test fails on any skip).
"""

import os
import unittest

from florence2_client import (
    CaptionRequest,
    DeadlineExceededError,
    DetectRequest,
    Florence2Client,
    GenerationOptions,
    InvalidArgumentError,
    OcrRequest,
    OpenVocabularyRequest,
    PhraseGroundingRequest,
    Region,
    RegionRequest,
    SegmentRequest,
    StreamItem,
    Tls,
    UnavailableError,
    UnknownStatusError,
)

CAR_TEXT = "car<loc_53><loc_333><loc_933><loc_774>"
# The car script's box on 640x480: ((bin + 0.5) / 1000) * extent.
CAR_BOX = [34.24, 160.08, 597.44, 371.76]
CAR = os.environ.get("FLORENCE2_CAR_ADDRESS")
OCR = os.environ.get("FLORENCE2_OCR_ADDRESS")
IMAGE = os.environ.get("FLORENCE2_IMAGE")
TLS_ADDRESS = os.environ.get("FLORENCE2_TLS_ADDRESS")
TLS_CA = os.environ.get("FLORENCE2_TLS_CA")
TOKEN = os.environ.get("FLORENCE2_TOKEN")


def px(bin_: int, extent: int) -> float:
    return (bin_ + 0.5) / 1000 * extent


@unittest.skipUnless(CAR and OCR and IMAGE, "needs FLORENCE2_CAR_ADDRESS, FLORENCE2_OCR_ADDRESS, FLORENCE2_IMAGE")
class LiveServerTest(unittest.TestCase):
    client: Florence2Client
    ocr_client: Florence2Client
    image: bytes

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = Florence2Client(CAR, default_timeout=60)
        cls.ocr_client = Florence2Client(OCR, default_timeout=60)
        with open(IMAGE, "rb") as f:
            cls.image = f.read()
        cls.client.wait_for_ready(30)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()
        cls.ocr_client.close()

    def assertBox(self, box, expected=CAR_BOX) -> None:
        for got, want in zip([box.x1, box.y1, box.x2, box.y2], expected):
            self.assertAlmostEqual(got, want, places=3)

    def test_health_and_model_info(self) -> None:
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health("florence2.v1.Florence2"), "SERVING")
        info = self.client.model_info()
        self.assertEqual(len(info.tasks), 15)
        self.assertIn("<OD>", info.tasks)
        self.assertEqual([(d.name, d.provider, d.workers) for d in info.devices], [("cpu:0", "cpu", 1)])
        self.assertEqual(info.limits.max_message_bytes, 50 * 1024 * 1024)
        self.assertEqual(info.default_num_beams, 3)
        self.assertEqual(info.revision, "local")

    def test_dns_target_gets_round_robin_and_serves(self) -> None:
        port = CAR.rsplit(":", 1)[1]  # type: ignore[union-attr]
        with Florence2Client(f"dns:///localhost:{port}", default_timeout=60) as client:
            self.assertEqual(client.load_balancing, "round_robin")
            self.assertEqual(client.detect(self.image).boxes[0].label, "car")

    def test_detect_from_bytes_and_path(self) -> None:
        r = self.client.detect(self.image, include_scores=True, include_raw_text=True)
        self.assertEqual(r.family, "detect")
        self.assertEqual(len(r.boxes), 1)
        self.assertBox(r.boxes[0])
        self.assertEqual(r.boxes[0].label, "car")
        self.assertTrue(0.99 < r.boxes[0].score <= 1, r.boxes[0].score)
        self.assertEqual(r.meta.raw_text, f"</s><s>{CAR_TEXT}</s>")
        self.assertEqual((r.meta.image_width, r.meta.image_height), (640, 480))
        self.assertEqual(r.meta.generated_tokens, 7)
        self.assertEqual(r.meta.device, "cpu:0")
        self.assertRegex(r.meta.request_id, r"^[0-9a-f-]{36}$")
        self.assertGreater(r.meta.timings.total_ms, 0)
        dense = self.client.detect(IMAGE, kind="dense_region_captions")
        self.assertEqual(dense.boxes[0].label, "car")
        self.assertIsNone(dense.boxes[0].score, "no score unless asked")

    def test_caption_each_detail(self) -> None:
        for detail in ("brief", "detailed", "paragraph"):
            self.assertEqual(self.client.caption(self.image, detail=detail).text, CAR_TEXT)

    def test_open_vocabulary(self) -> None:
        r = self.client.detect_open_vocabulary(self.image, ["automobile", "truck"])
        self.assertEqual([b.label for b in r.boxes], ["automobile", "truck"])
        self.assertBox(r.boxes[1])
        self.assertEqual(r.instances, [])
        self.assertEqual([b.label for b in self.client.detect_open_vocabulary(self.image, "vehicle").boxes], ["vehicle"])

    def test_ground_phrases(self) -> None:
        r = self.client.ground_phrases(self.image, "A car on a road.")
        self.assertEqual([b.label for b in r.boxes], ["car"])
        self.assertBox(r.boxes[0])

    def test_segment_by_expression_and_region(self) -> None:
        a = self.client.segment(self.image, referring_expression="the car", include_scores=True)
        self.assertEqual(len(a.instances), 1)
        for got, want in zip(a.instances[0].polygons[0], CAR_BOX):
            self.assertAlmostEqual(got, want, places=3)
        self.assertGreater(a.instances[0].score, 0.99)
        b = self.client.segment(self.image, region=Region(10, 10, 300, 200))
        c = self.client.segment(self.image, region=(10, 10, 300, 200))
        self.assertEqual(len(b.instances), 1)
        self.assertEqual(b.instances[0].polygons, c.instances[0].polygons)

    def test_ocr_plain_and_with_regions(self) -> None:
        self.assertEqual(self.client.ocr(self.image).text, CAR_TEXT)
        r = self.ocr_client.ocr(self.image, with_regions=True, include_scores=True)
        self.assertEqual([line.text for line in r.lines], ["HELLO", "WORLD"])
        expected = [px(100, 640), px(200, 480), px(500, 640), px(200, 480), px(500, 640), px(300, 480), px(100, 640), px(300, 480)]
        for got, want in zip(r.lines[0].points, expected):
            self.assertAlmostEqual(got, want, places=3)
        self.assertTrue(all(line.score > 0.99 for line in r.lines))

    def test_describe_region_each_task(self) -> None:
        for task in ("category", "description", "ocr"):
            self.assertEqual(self.client.describe_region(self.image, (33, 160, 597, 371), task).text, CAR_TEXT)

    def test_run_every_family(self) -> None:
        det = self.client.run(DetectRequest(image=self.image))
        self.assertEqual(det.boxes[0].label, "car")
        results = [
            self.client.run(CaptionRequest(image=self.image, detail="detailed")),
            self.client.run(OpenVocabularyRequest(image=self.image, classes=["car"])),
            self.client.run(PhraseGroundingRequest(image=IMAGE, caption="a car")),
            self.client.run(SegmentRequest(image=self.image, referring_expression="car")),
            self.client.run(OcrRequest(image=self.image)),
            self.client.run(RegionRequest(image=self.image, region=(1, 1, 100, 100), task="description")),
        ]
        self.assertEqual(
            [r.family for r in results], ["caption", "open_vocabulary", "phrase_grounding", "segment", "ocr", "region"]
        )
        self.assertEqual(results[0].text, CAR_TEXT)
        self.assertEqual(results[1].boxes[0].label, "car")
        self.assertEqual(results[2].boxes[0].label, "car")
        self.assertEqual(len(results[3].instances), 1)
        self.assertEqual(results[4].text, CAR_TEXT)
        self.assertEqual(results[5].text, CAR_TEXT)

    def test_invalid_argument_names_the_field_and_is_not_retried(self) -> None:
        with self.assertRaises(InvalidArgumentError) as beams:
            self.client.caption(self.image, num_beams=9)
        self.assertEqual(beams.exception.field, "options.num_beams")
        self.assertEqual(beams.exception.code_name, "INVALID_ARGUMENT")
        self.assertEqual(beams.exception.attempts, 1)
        with self.assertRaises(InvalidArgumentError) as junk:
            self.client.detect(b"GIF89a garbage")
        self.assertEqual(junk.exception.field, "image.data")
        self.assertIn("not a decodable image", junk.exception.details)
        with self.assertRaises(InvalidArgumentError) as run:
            self.client.run(DetectRequest(image=self.image, options=GenerationOptions(max_new_tokens=5000)))
        self.assertEqual(run.exception.field, "detect.options.max_new_tokens")

    def test_stream_outcomes_matched_by_id(self) -> None:
        items = [StreamItem(f"d{i}", DetectRequest(image=self.image)) for i in range(4)]
        items += [
            StreamItem("cap", CaptionRequest(image=IMAGE, detail="paragraph")),
            ("bad", CaptionRequest(image=b"not an image")),
            ("missing", OcrRequest(image=os.path.join(os.path.dirname(IMAGE), "missing.png"))),
            ("ov", OpenVocabularyRequest(image=self.image, classes=["car", "bus"])),
        ]
        got = {}
        for o in self.client.stream(items, max_in_flight=3):
            self.assertNotIn(o.id, got, "one outcome per id")
            got[o.id] = o
        self.assertEqual(sorted(got), ["bad", "cap", "d0", "d1", "d2", "d3", "missing", "ov"])
        for i in range(4):
            o = got[f"d{i}"]
            self.assertIsNone(o.error)
            self.assertEqual(o.result.family, "detect")
            self.assertBox(o.result.boxes[0])
        self.assertEqual(got["cap"].result.text, CAR_TEXT)
        self.assertEqual([b.label for b in got["ov"].result.boxes], ["car", "bus"])
        bad = got["bad"].error
        self.assertIsInstance(bad, InvalidArgumentError)
        self.assertEqual(bad.field, "request.caption.image.data")
        missing = got["missing"].error
        self.assertIsInstance(missing, InvalidArgumentError)
        self.assertEqual(missing.field, "request.ocr.image.data")
        self.assertFalse(got["bad"].ok)

    def test_stream_call_failure_reaches_unanswered_ids_then_raises(self) -> None:
        items = [(f"t{i}", DetectRequest(image=self.image)) for i in range(4)]
        seen = []
        with self.assertRaises(DeadlineExceededError):
            for o in self.client.stream(items, timeout=0.001):
                seen.append(o)
        # However many were sent before the deadline, each got the call's error as its outcome.
        self.assertTrue(all(isinstance(o.error, DeadlineExceededError) for o in seen), seen)

    def test_stream_reraises_the_request_iterables_error(self) -> None:
        def requests():
            yield ("first", DetectRequest(image=self.image))
            raise RuntimeError("the producer broke")

        ids = []
        with self.assertRaisesRegex(RuntimeError, "the producer broke"):
            for o in self.client.stream(requests()):
                ids.append(o.id)
        self.assertLessEqual(set(ids), {"first"})

    def test_stream_break_cancels_and_client_keeps_working(self) -> None:
        many = [(f"m{i}", DetectRequest(image=self.image)) for i in range(20)]
        n = 0
        for o in self.client.stream(many, max_in_flight=2):
            self.assertTrue(o.ok)
            n += 1
            if n == 2:
                break
        self.assertEqual(n, 2)
        self.assertEqual(self.client.detect(self.image).boxes[0].label, "car")


@unittest.skipUnless(TLS_ADDRESS and TLS_CA and TOKEN and IMAGE, "needs FLORENCE2_TLS_ADDRESS, FLORENCE2_TLS_CA, FLORENCE2_TOKEN")
class TlsAndTokenTest(unittest.TestCase):
    def test_tls_with_a_private_ca_and_a_bearer_token(self) -> None:
        with open(TLS_CA, "rb") as f:
            ca = f.read()
        with Florence2Client(TLS_ADDRESS, credentials=Tls(root_certs=ca), token=TOKEN, default_timeout=60) as client:
            self.assertEqual(client.detect(IMAGE).boxes[0].label, "car")
        with Florence2Client(TLS_ADDRESS, credentials=Tls(root_certs=ca), default_timeout=60) as anonymous:
            with self.assertRaises(UnknownStatusError) as no_token:
                anonymous.detect(IMAGE)
            self.assertEqual(no_token.exception.code_name, "UNAUTHENTICATED")
            self.assertEqual(no_token.exception.attempts, 1, "not retried")
        # Plain TCP to a TLS port never connects: UNAVAILABLE, after the retries it is allowed.
        with Florence2Client(TLS_ADDRESS, default_timeout=30, max_retries=1, retry_base_delay=0.01) as plain:
            with self.assertRaises(UnavailableError) as refused:
                plain.detect(IMAGE)
            self.assertEqual(refused.exception.attempts, 2)


if __name__ == "__main__":
    unittest.main()
