# wsgw's Lambda runtime client for Python (docs/lambda.md): imports the handler named by _HANDLER
# ("file.function", the file relative to LAMBDA_TASK_ROOT; "pkg/mod.fn" and "pkg.mod.fn" both work) and
# serves invocations from the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API, one at a time, as Lambda's
# own Python runtime does: the result serialised as JSON, an exception reported as
# {errorType, errorMessage, stackTrace}. Python's standard library only.
import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = "/2018-06-01/runtime"
_conn = None


def request(method, path, body=None, headers=None):
    """One request on a kept-alive connection, opened again once if the gateway closed it."""
    global _conn
    data = None if body is None else body.encode("utf-8")
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    for attempt in (0, 1):
        try:
            if _conn is None:
                host, port = API.rsplit(":", 1)
                _conn = http.client.HTTPConnection(host, int(port))
            _conn.request(method, BASE + path, body=data, headers=hdrs)
            res = _conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read().decode("utf-8")
        except (ConnectionError, http.client.HTTPException):
            _conn = None
            if attempt:
                raise


def error_body(exc):
    return json.dumps({
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": [line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__)],
    })


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def load_handler():
    spec = os.environ.get("_HANDLER", "")
    module_name, dot, function_name = spec.rpartition(".")
    if not dot or not module_name or not function_name:
        raise ValueError("Bad handler '%s': expected file.function" % spec)
    root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name.replace("/", "."))
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise AttributeError("Handler '%s' missing on module '%s'" % (function_name, module_name))
    return fn


def main():
    try:
        handler = load_handler()
    except Exception as exc:  # noqa: BLE001 - every init failure is reported to the gateway
        traceback.print_exc()
        try:
            request("POST", "/init/error", error_body(exc), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        finally:
            sys.exit(1)
    while True:
        status, headers, body = request("GET", "/invocation/next")
        if status != 200:
            print("wsgw runtime: /invocation/next answered %d: %s" % (status, body), file=sys.stderr)
            sys.exit(1)
        request_id = headers["lambda-runtime-aws-request-id"]
        os.environ["_X_AMZN_TRACE_ID"] = headers.get("lambda-runtime-trace-id", "")
        try:
            result = handler(json.loads(body), Context(headers))
            payload = json.dumps(result)
        except Exception as exc:  # noqa: BLE001 - the function's error is the invocation's answer
            request("POST", "/invocation/%s/error" % request_id, error_body(exc),
                    {"Lambda-Runtime-Function-Error-Type": type(exc).__name__})
            continue
        request("POST", "/invocation/%s/response" % request_id, payload)


if __name__ == "__main__":
    main()
