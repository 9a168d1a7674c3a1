"""AWS list prices the cost rows use: us-east-1, on-demand, first pricing tier, as published on
each service's pricing page (checked 2026-12; prices change, so each carries its source).

Prices that are the same whichever metrics transport the functions use are left out of the
emf-vs-api comparison on purpose: the custom metrics themselves ($0.30 per metric-month for the
first 10,000; EMF creates the same metrics as PutMetricData), the log lines every invocation
writes anyway, and DynamoDB storage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    usd: float  # per `per` units
    per: float
    unit: str
    source: str

    def cost(self, quantity: float) -> float:
        return quantity * self.usd / self.per

    def describe(self) -> str:
        per = f"{self.per:,.0f} " if self.per != 1 else ""
        usd = f"{self.usd:.10f}".rstrip("0").rstrip(".")
        return f"${usd} per {per}{self.unit} ({self.source})"


LAMBDA = "https://aws.amazon.com/lambda/pricing/"
API_GATEWAY = "https://aws.amazon.com/api-gateway/pricing/"
DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"

# Lambda, Arm (the functions are arm64): requests, and compute in GB-seconds (billed per ms).
LAMBDA_REQUESTS = Price(0.20, 1e6, "requests", LAMBDA)
LAMBDA_GB_SECONDS = Price(0.0000133334, 1, "GB-second (Arm)", LAMBDA)
# API Gateway WebSocket APIs: messages (sent and received, metered in 32 KB units) and the
# time connections stay open.
API_GATEWAY_MESSAGES = Price(1.00, 1e6, "messages (WebSocket, first 1 billion)", API_GATEWAY)
API_GATEWAY_CONNECTION_MINUTES = Price(0.25, 1e6, "connection minutes", API_GATEWAY)
# DynamoDB on-demand throughput (a standard write of an item up to 1 KB is one WRU; a
# strongly consistent read of up to 4 KB one RRU).
DYNAMODB_WRITES = Price(0.625, 1e6, "write request units (on-demand)", DYNAMODB)
DYNAMODB_READS = Price(0.125, 1e6, "read request units (on-demand)", DYNAMODB)
# CloudWatch: PutMetricData requests; Logs ingestion (standard class; Lambda logs are billed
# at this rate for the first 10 TB a month).
PUT_METRIC_DATA = Price(0.01, 1000, "PutMetricData requests", CLOUDWATCH)
LOGS_INGESTION = Price(0.50, 1, "GB of logs ingested (standard)", CLOUDWATCH)

ALL: tuple[tuple[str, Price], ...] = (
    ("Lambda requests", LAMBDA_REQUESTS),
    ("Lambda compute", LAMBDA_GB_SECONDS),
    ("API Gateway messages", API_GATEWAY_MESSAGES),
    ("API Gateway connection minutes", API_GATEWAY_CONNECTION_MINUTES),
    ("DynamoDB writes", DYNAMODB_WRITES),
    ("DynamoDB reads", DYNAMODB_READS),
    ("CloudWatch PutMetricData", PUT_METRIC_DATA),
    ("CloudWatch Logs ingestion", LOGS_INGESTION),
)
