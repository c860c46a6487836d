"""Knows nothing of florence2.proto: fetches every service's files through server reflection, builds
them in a google.protobuf DescriptorPool (which enforces protoc's rules, e.g. map entry naming) and
prints, as JSON, what the pool says about them, or the error it raised."""
import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

parser = argparse.ArgumentParser()
parser.add_argument("--stubs", required=True)
parser.add_argument("--address", required=True)
args = parser.parse_args()
sys.path.insert(0, args.stubs)
from refl import reflection_pb2, reflection_pb2_grpc  # noqa: E402

stub = reflection_pb2_grpc.ServerReflectionStub(grpc.insecure_channel(args.address))


def ask(**request):
    return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)])))


services = sorted(s.name for s in ask(list_services="").list_services_response.service)
pool = descriptor_pool.DescriptorPool()
added = set()
try:
    for service in services:
        files = ask(file_containing_symbol=service).file_descriptor_response.file_descriptor_proto
        # The file comes first, then what it imports: a pool needs imports added first.
        for raw in reversed(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
            if name not in added:
                pool.AddSerializedFile(raw)
                added.add(name)
    files_field = pool.FindMessageTypeByName("florence2.v1.ModelInfo").fields_by_name["files"]
    out = {
        "services": services,
        "methods": {s: sorted(m.name for m in pool.FindServiceByName(s).methods) for s in services},
        "files_is_map": files_field.message_type is not None and files_field.message_type.GetOptions().map_entry,
        "files_entry": files_field.message_type.name,
    }
except Exception as e:  # the pool's refusal is the finding, reported rather than raised
    out = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
