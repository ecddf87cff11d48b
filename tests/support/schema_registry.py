#!/usr/bin/env python3
"""A minimal Confluent-compatible schema registry for the tests.

No real registry (Confluent, Karapace) is installable here, so the tests run this one. It
implements exactly the endpoints tidemark uses, with the documented request and response
shapes:

  POST /subjects/{subject}/versions                       {"schema": "..."} -> {"id": N}
  GET  /schemas/ids/{id}                                  -> {"schema": "..."} | 404 40403
  POST /compatibility/subjects/{subject}/versions/latest  {"schema": "..."} -> {"is_compatible": b}

Ids are global and stable per schema text, as in Confluent's registry. Compatibility is
BACKWARD for records: every field of the new schema must exist in the latest one or have a
default. Prints "listening on PORT" once ready; binds 127.0.0.1 only.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

schemas = {}    # id -> schema text
ids = {}        # schema text -> id
subjects = {}   # subject -> [id, ...]


def fields(schema_text):
    schema = json.loads(schema_text)
    return {f["name"]: f for f in schema.get("fields", [])}


class Registry(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            schema = schemas.get(int(parts[2]))
            if schema is None:
                return self.reply(404, {"error_code": 40403, "message": "Schema not found"})
            return self.reply(200, {"schema": schema})
        self.reply(404, {"error_code": 404, "message": "not found"})

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        try:
            schema = self.body()["schema"]
            json.loads(schema)
        except (KeyError, ValueError):
            return self.reply(422, {"error_code": 42201, "message": "Invalid schema"})
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            if schema not in ids:
                ids[schema] = len(ids) + 1
                schemas[ids[schema]] = schema
            versions = subjects.setdefault(parts[1], [])
            if ids[schema] not in versions:
                versions.append(ids[schema])
            return self.reply(200, {"id": ids[schema]})
        if len(parts) == 5 and parts[:2] == ["compatibility", "subjects"] and parts[3:] == ["versions", "latest"]:
            versions = subjects.get(parts[2])
            if not versions:
                return self.reply(404, {"error_code": 40401, "message": "Subject not found"})
            old, new = fields(schemas[versions[-1]]), fields(schema)
            ok = all(name in old or "default" in f for name, f in new.items())
            return self.reply(200, {"is_compatible": ok})
        self.reply(404, {"error_code": 404, "message": "not found"})


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Registry)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
