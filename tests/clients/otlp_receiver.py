#!/usr/bin/env python3
"""A real OTLP/gRPC trace receiver for lakegate's telemetry test.

Serves OpenTelemetry's TraceService (from the opentelemetry-proto package, the
protocol's own definitions) on a free loopback port, prints
`OTLP_ENDPOINT=http://127.0.0.1:PORT` once it listens, and appends every span it
receives to --out as one JSON object per line:

    {"trace_id", "span_id", "parent_span_id", "name", "service", "attributes"}

    .venv/bin/python tests/clients/otlp_receiver.py --out spans.jsonl

Runs until killed.
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "service": resource.get("service.name"),
                                "attributes": {a.key: value_of(a.value) for a in span.attributes},
                            }
                        )
                    )
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="file the spans are appended to")
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(args.out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"OTLP_ENDPOINT=http://127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
