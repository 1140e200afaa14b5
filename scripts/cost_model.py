#!/usr/bin/env python3
"""Cost model of the marketplace on AWS (arm64 Lambda, HTTP API, on-demand
DynamoDB, SQS, S3, SES, EventBridge Pipes, CloudWatch Logs), from the measured
figures in BENCHMARKS.md. Prints the Markdown tables BENCHMARKS.md shows:
the cost of a million calls of each route, and of a month at 10 000 and
1 000 000 monthly active customers under a stated traffic mix.

    python3 scripts/cost_model.py

Every input is a named constant below: the measured ones say which benchmark
produced them; the assumed ones say so.
"""

# Prices: AWS us-east-1 list prices (on-demand DynamoDB after its 2024-11-01
# reduction), as published in 2025 and used on 2026-11-28; check
# https://aws.amazon.com/pricing before relying on them. Free tiers ignored.
PRICE = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "s3_put": 0.005 / 1e3,
    "s3_get": 0.0004 / 1e3,
    "ses_message": 0.10 / 1e3,
    "pipes_event": 0.40 / 1e6,
    "logs_gb": 0.50,
    "pitr_gb_month": 0.20,
    "export_gb": 0.10,
    "s3_gb_month": 0.023,
}

# Assumed: a DynamoDB call from Lambda in the same region takes about 5 ms
# (the local figures cannot say: moto is a Python server on loopback).
DYNAMODB_CALL_MS = 5.0
# Measured: function code time per request, warm p50 on the embedded store
# (lambda-harness, BENCHMARKS.md), about 0.2 ms for every route but the hashes.
CODE_MS = 0.2
# Measured: one argon2id hash (m=12 MiB, t=3), 12.7 ms median on a full x86
# core (password_hash_bench, release); at auth's 1024 MB (0.58 vCPU) about 22 ms.
HASH_MS_AT_1024 = 22.0
# Assumed: about 300 bytes of log per request (the access log and a line or two).
LOG_BYTES_PER_REQUEST = 300

# Measured: DynamoDB calls and capacity units per request from item sizes
# (request_units example, BENCHMARKS.md), with the function's memory (MB) from
# template.yaml and the argon2 hashes the route runs.
ROUTES = {
    # route: (memory MB, DynamoDB calls, read units, write units, hashes)
    "GET /health": (256, 1, 1.0, 0.0, 0),
    "GET /categories": (256, 1, 1.0, 0.0, 0),
    "GET /products (page of 20)": (256, 1, 2.0, 0.0, 0),
    "GET /products?inStock=true&sort=price_asc": (256, 2, 3.0, 0.0, 0),
    "GET /products/{id}": (256, 1, 1.0, 0.0, 0),
    "POST /auth/register": (1024, 5, 1.0, 7.0, 1),
    "POST /auth/login": (1024, 12, 6.0, 6.0, 1),
    "GET /auth/me": (1024, 1, 1.0, 0.0, 0),
    "GET /users/me": (256, 1, 1.0, 0.0, 0),
    "PATCH /products/{id}": (256, 2, 1.0, 4.0, 0),
    "GET /orders": (256, 1, 1.0, 0.0, 0),
    "GET /orders/{id}": (256, 1, 1.0, 0.0, 0),
    "POST /orders (3 lines, 2 farmers)": (256, 6, 5.0, 18.0, 0),
    "POST /orders/{id}/status": (256, 2, 1.0, 4.0, 0),
}

# Measured: what one checkout of 2 orders leaves to the outbox relay and the
# worker (request_units, "(async)"): DynamoDB calls and units. Assumed from the
# design: 4 outbox events through the pipe (2 order events, 2 mails), 4 SQS
# messages (send, receive, delete each), 4 worker invocations at 1024 MB,
# 2 mails sent.
CHECKOUT_EVENTS = {"calls": 18, "read": 8.5, "write": 24.0, "pipe_events": 4, "sqs_requests": 12,
                   "worker_invocations": 4, "mails": 2}

# Assumed: a photo upload: the ticket (POST /products/{id}/images: 2 calls,
# 1 read unit, 4 write units), the browser's PUT, S3's notification (1 SQS
# send), the worker (receive, delete; GET the upload, PUT image and thumbnail;
# 2 calls, 1 read, 4 write units; 300 ms at 1024 MB to decode and resize).
PHOTO = {"lambda_ms_256": 2 * DYNAMODB_CALL_MS, "worker_ms_1024": 300 + 2 * DYNAMODB_CALL_MS,
         "read": 2.0, "write": 8.0, "sqs_requests": 3, "s3_put": 3, "s3_get": 1, "api_requests": 1}

# Assumed traffic per monthly active customer and month.
MIX_PER_CUSTOMER = {
    "GET /products (page of 20)": 40,
    "GET /products?inStock=true&sort=price_asc": 15,
    "GET /products/{id}": 60,
    "GET /categories": 8,
    "POST /auth/login": 2,
    "GET /auth/me": 8,
    "GET /users/me": 2,
    "POST /auth/register": 0.1,
    "GET /orders": 3,
    "GET /orders/{id}": 3,
    "POST /orders (3 lines, 2 farmers)": 1,
    "POST /orders/{id}/status": 4,
    "PATCH /products/{id}": 0.2,
    "GET /health": 0,
}
PHOTOS_PER_CUSTOMER = 0.02
# Assumed: table bytes per customer (account, sessions, six months of orders,
# notifications, sales figures) and the compression of backups.
TABLE_BYTES_PER_CUSTOMER = 30_000
BACKUP_COMPRESSION = 5
BACKUP_RETENTION_DAYS = 35


def billed_ms(memory_mb, calls, hashes):
    ms = CODE_MS + calls * DYNAMODB_CALL_MS + hashes * HASH_MS_AT_1024 * (1024 / memory_mb)
    return float(int(ms) + (0 if ms == int(ms) else 1))  # Lambda bills per started millisecond


def route_cost(memory_mb, calls, read, write, hashes):
    """Dollars per call of a route, by service."""
    lambda_cost = PRICE["lambda_request"] + billed_ms(memory_mb, calls, hashes) / 1000 * memory_mb / 1024 * PRICE["lambda_gb_second_arm64"]
    return {
        "lambda": lambda_cost,
        "api": PRICE["http_api_request"],
        "dynamodb": read * PRICE["dynamodb_read_unit"] + write * PRICE["dynamodb_write_unit"],
        "logs": LOG_BYTES_PER_REQUEST / 1e9 * PRICE["logs_gb"],
    }


def checkout_events_cost():
    e = CHECKOUT_EVENTS
    worker_ms = e["calls"] * DYNAMODB_CALL_MS / e["worker_invocations"] + CODE_MS
    lambda_cost = e["worker_invocations"] * (PRICE["lambda_request"] + (int(worker_ms) + 1) / 1000 * PRICE["lambda_gb_second_arm64"])
    return (lambda_cost + e["read"] * PRICE["dynamodb_read_unit"] + e["write"] * PRICE["dynamodb_write_unit"]
            + e["pipe_events"] * PRICE["pipes_event"] + e["sqs_requests"] * PRICE["sqs_request"]
            + e["mails"] * PRICE["ses_message"])


def photo_cost():
    p = PHOTO
    lambda_cost = 2 * PRICE["lambda_request"] + p["lambda_ms_256"] / 1000 * 0.25 * PRICE["lambda_gb_second_arm64"] \
        + p["worker_ms_1024"] / 1000 * PRICE["lambda_gb_second_arm64"]
    return (lambda_cost + p["api_requests"] * PRICE["http_api_request"] + p["read"] * PRICE["dynamodb_read_unit"]
            + p["write"] * PRICE["dynamodb_write_unit"] + p["sqs_requests"] * PRICE["sqs_request"]
            + p["s3_put"] * PRICE["s3_put"] + p["s3_get"] * PRICE["s3_get"])


def month(customers):
    lines = {}
    for route, per_customer in MIX_PER_CUSTOMER.items():
        calls = customers * per_customer
        if calls:
            lines[route] = calls * sum(route_cost(*ROUTES[route]).values())
    checkouts = customers * MIX_PER_CUSTOMER["POST /orders (3 lines, 2 farmers)"]
    lines["order events (relay, worker, mail)"] = checkouts * checkout_events_cost()
    lines["photos"] = customers * PHOTOS_PER_CUSTOMER * photo_cost()
    table_gb = customers * TABLE_BYTES_PER_CUSTOMER / 1e9
    # The daily portable backup reads the table with strongly consistent scans
    # (1 unit per 4 KB); past what one 15-minute run can read at the budget,
    # the native export (from PITR) takes over.
    scan_units_per_day = table_gb * 1e9 / 4096
    if scan_units_per_day <= 200 * 800:
        lines["daily backup (scan) and its storage"] = 30 * scan_units_per_day * PRICE["dynamodb_read_unit"] \
            + table_gb / BACKUP_COMPRESSION * BACKUP_RETENTION_DAYS * PRICE["s3_gb_month"]
    else:
        lines["daily native export and its storage"] = 30 * table_gb * PRICE["export_gb"] \
            + table_gb * BACKUP_RETENTION_DAYS * PRICE["s3_gb_month"]
    lines["point-in-time recovery"] = table_gb * PRICE["pitr_gb_month"]
    lines["table storage"] = table_gb * 0.25
    return lines


def main():
    print("| route | billed ms (memory) | Lambda | API Gateway | DynamoDB | logs | total per million calls |")
    print("|---|---|---|---|---|---|---|")
    for route, spec in ROUTES.items():
        cost = route_cost(*spec)
        total = sum(cost.values())
        print(f"| {route} | {billed_ms(spec[0], spec[1], spec[4]):.0f} ({spec[0]} MB) | ${cost['lambda'] * 1e6:.2f} | "
              f"${cost['api'] * 1e6:.2f} | ${cost['dynamodb'] * 1e6:.2f} | ${cost['logs'] * 1e6:.2f} | ${total * 1e6:.2f} |")
    print(f"| one checkout's order events (relay, worker, 2 mails) | | | | | | ${checkout_events_cost() * 1e6:.2f} |")
    print(f"| one photo upload (ticket, upload, worker, S3) | | | | | | ${photo_cost() * 1e6:.2f} |")
    print()
    small, large = month(10_000), month(1_000_000)
    print("| per month | 10 000 customers | 1 000 000 customers |")
    print("|---|---|---|")
    keys = list(dict.fromkeys(list(small) + list(large)))
    for key in keys:
        print(f"| {key} | ${small.get(key, 0):,.2f} | ${large.get(key, 0):,.2f} |")
    print(f"| **total** | **${sum(small.values()):,.2f}** | **${sum(large.values()):,.2f}** |")
    print(f"| per customer | ${sum(small.values()) / 10_000:.4f} | ${sum(large.values()) / 1_000_000:.4f} |")


if __name__ == "__main__":
    main()
