#!/usr/bin/env python3
"""A real OTLP metrics receiver for the tests, built on the official protobuf
definitions (opentelemetry-proto) and grpcio. It accepts OTLP/HTTP protobuf
on POST /v1/metrics and OTLP/gRPC on MetricsService/Export, and appends every
request it decodes to a JSON-lines file (protobuf's canonical JSON mapping).

usage: otlp_receiver.py HTTP_PORT GRPC_PORT OUT_FILE
"""
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

http_port, grpc_port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def record(req, transport):
    line = MessageToJson(req, indent=None, preserving_proto_field_name=True)
    with lock, open(out_path, "a") as f:
        f.write('{"transport":"%s","request":%s}\n' % (transport, line))


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/metrics" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(415 if self.path == "/v1/metrics" else 404)
            self.end_headers()
            return
        req = metrics_service_pb2.ExportMetricsServiceRequest()
        req.ParseFromString(body)
        record(req, "http")
        resp = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)

    def log_message(self, *args):
        pass


class Grpc(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        record(request, "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Grpc(), server)
server.add_insecure_port("127.0.0.1:%d" % grpc_port)
server.start()
print("ready", flush=True)
ThreadingHTTPServer(("127.0.0.1", http_port), Http).serve_forever()
