#!/usr/bin/env python3
"""A small Python client for florence2-server, built only on stubs generated from our .proto files.

Used by test/polyglot/python.test.ts with Debian's python3-grpcio, and stubs from Debian's protoc
and grpc_python_plugin (PLUGIN: --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin):

    protoc PLUGIN -I proto --python_out=STUBS --grpc_python_out=STUBS florence2/v1/florence2.proto
    protoc PLUGIN -I <grpc-health-check>/proto --python_out=STUBS --grpc_python_out=STUBS health/v1/health.proto
    /usr/bin/python3 test/polyglot/python_client.py --stubs STUBS --address 127.0.0.1:PORT --image car.png detect health

Each action's result goes into one JSON object printed on stdout, keyed by the action:
  detect          Detect (<OD>) on --image: its boxes and meta
  ocr_regions     Ocr with_regions on --image: its lines (quad points and text) and meta
  health          grpc.health.v1 Check for '' and for florence2.v1.Florence2: the status names
  info            GetModelInfo: model, devices, tasks
  detect_invalid  Detect with bytes that are no image: the status code name and details
  stream          Stream with two Detect requests ("a", "b") on --image: request ids and box labels
A failed call (other than detect_invalid's expected one) prints {"error": {...}} and exits with 1.
"""
import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--stubs', required=True, help='folder holding the generated florence2/ and health/ stubs')
    parser.add_argument('--address', required=True, help='host:port of the server')
    parser.add_argument('--image', help='image file sent with detect, ocr_regions and stream')
    parser.add_argument('--timeout', type=float, default=30.0, help='deadline per call in seconds')
    parser.add_argument('actions', nargs='+', choices=['detect', 'ocr_regions', 'health', 'info', 'detect_invalid', 'stream'])
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from google.protobuf import json_format
    from florence2.v1 import florence2_pb2 as pb
    from florence2.v1 import florence2_pb2_grpc as pb_grpc
    from health.v1 import health_pb2, health_pb2_grpc

    def to_dict(message):
        return json_format.MessageToDict(message, preserving_proto_field_name=True, including_default_value_fields=True)

    image = None
    if args.image:
        with open(args.image, 'rb') as f:
            image = pb.Image(data=f.read())

    out = {}
    with grpc.insecure_channel(args.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
        stub = pb_grpc.Florence2Stub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        try:
            for action in args.actions:
                if action == 'detect':
                    r = stub.Detect(pb.DetectRequest(image=image, kind=pb.DETECT_KIND_OBJECTS, options=pb.Options(include_scores=True, include_raw_text=True)), timeout=args.timeout)
                    out[action] = {'boxes': [to_dict(b) for b in r.boxes], 'meta': to_dict(r.meta)}
                elif action == 'ocr_regions':
                    r = stub.Ocr(pb.OcrRequest(image=image, with_regions=True, options=pb.Options(include_raw_text=True)), timeout=args.timeout)
                    out[action] = {'text': r.text, 'lines': [{'points': list(l.points), 'text': l.text} for l in r.lines], 'meta': to_dict(r.meta)}
                elif action == 'health':
                    statuses = {}
                    for service in ['', 'florence2.v1.Florence2']:
                        h = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=args.timeout)
                        statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(h.status)
                    out[action] = statuses
                elif action == 'info':
                    r = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=args.timeout)
                    out[action] = {'model': r.model, 'devices': [d.name for d in r.devices], 'tasks': list(r.tasks), 'server_version': r.server_version}
                elif action == 'detect_invalid':
                    try:
                        stub.Detect(pb.DetectRequest(image=pb.Image(data=b'not an image')), timeout=args.timeout)
                        out[action] = {'code': 'OK'}
                    except grpc.RpcError as e:
                        out[action] = {'code': e.code().name, 'details': e.details()}
                elif action == 'stream':
                    requests = [pb.StreamRequest(request_id=rid, request=pb.RunRequest(detect=pb.DetectRequest(image=image))) for rid in ['a', 'b']]
                    got = {}
                    for m in stub.Stream(iter(requests), timeout=args.timeout):
                        which = m.WhichOneof('outcome')
                        got[m.request_id] = [b.label for b in m.result.detect.boxes] if which == 'result' else {'error': m.error.code}
                    out[action] = got
        except grpc.RpcError as e:
            out['error'] = {'action': action, 'code': e.code().name, 'details': e.details()}
            print(json.dumps(out))
            return 1
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
