"""The prose of docs/benchmarks.md: how each number is measured, and what the numbers say.

``bench.report.write_doc`` puts it under the table; edit it here, then rerun ``make bench``.
"""

METHOD = """\
### 1. AWS calls per operation

The real handlers from `runtime/routes.py` run in-process against moto (in-memory DynamoDB and
CloudWatch), with `CONNECTIONS_ENDPOINT` pointing at `bench/connections_server.py`, a local
recording stand-in for API Gateway's @connections API. `bench/call_counter.py` counts every
API call through botocore's `before-call.<service>.<API>` event, once per call (botocore's
retries are attempts inside one call, so they are not counted twice). The scenarios are
`bench/call_scenarios.py` (`python -m bench.call_counter` prints the same counts per API;
`tests/runtime/test_call_budget.py` asserts them). Each scenario sets up its state first,
uncounted, then counts exactly one operation. The budgets are for the default
`metricsTransport: emf` (metrics ride in the log line, no CloudWatch call; with `api` every
invocation that measured something adds exactly one `PutMetricData`, which the tests check);
a speaker's disconnect may also make one `PostToConnection` per listener and one
`BatchWriteItem` per 25 listener records (DynamoDB's batch limit), so its budget is
3 + N + ⌈N/25⌉. Operations without a budget are shown for completeness.

### 1b. AWS cost of 1,000 listener-hours

`bench/cost.py`: a listener-hour is one join (`$connect` + `joinSession`), a heartbeat every
30 s (120) and one `$disconnect`. Each of those operations runs through its real handler on
moto (the scenarios of §1), 9 times under `metricsTransport: emf` and 9 times under `api`, in
the same run; each gives its AWS calls by API, the bytes of the EMF lines it wrote and its
median duration. They are priced at the us-east-1 list prices in `bench/prices.py` (each with
its source page): Lambda requests and GB-seconds (the function's memory from the route table ×
the handler's duration on moto plus a modelled 5 ms per AWS call, rounded up to 1 ms), API
Gateway messages (each client message and its reply) and connection minutes (60), DynamoDB
on-demand request units (1 per write or read of a record under 1 KB, plus 1 per global
secondary index a write changes: `bench/index_writes.py` reads each measured request — the
attributes an UpdateItem writes, the item a PutItem puts — against the index projections of
`runtime/tables.py`), `PutMetricData` requests (`api`) and CloudWatch Logs ingestion of every
line an invocation writes: the function's own (its INFO line, and the EMF line with `emf`)
and Lambda's START, END and REPORT lines (368 bytes modelled). The row "DynamoDB write units
of one heartbeat" shows the heartbeat's table and index writes, and what they would be if the
Connections index projected `ALL` (as it did before issue 18). Charges that do not depend on
the transport (the custom metrics themselves, storage) are left out.

### 1c. Refresh wave of a 5,000-listener event

`bench/refresh_model.py`, a model: every listener opens a new connection when the heartbeat
(every 30 s) that finds its refresh due pushes `connectionRefreshRequired`; the refresh is
due at `connectionRefreshMinutes` plus the connection's own offset, computed by the
service's function (`runtime.handlers.heartbeat.refresh_due_ms`) over generated connection
IDs. Two audiences: 5,000 joining within a minute (own heartbeat phases), and 5,000
reconnecting within 10 s after a Wi-Fi blip (heartbeats in step). Peak new connections per
second, with no spread and with the default 15 minutes, against API Gateway's account quota
of 500 new connections per second.

### 2. Cold-start proxy

Each sample is a fresh `python -I` process (isolated mode: no user site, no `PYTHON*`
variables, no current directory on `sys.path`) with a minimal environment (`PATH` plus the
variables a function is configured with, `LOGURU_AUTOINIT=False` included) that times
`import <module>`, in wall-clock time (`perf_counter`) and CPU time (`process_time`);
interpreter start-up is not included. One
warm-up pass (so bytecode caches exist) is followed by 9 passes over every handler module of
the route table and a bare `import boto3`, round-robin, so a burst of other work on the
machine hits every module alike. The table shows each wall-clock median and its ratio to
`import boto3`, which every function pays anyway (the Lambda runtime provides boto3), with
the CPU-time median and ratio beside it: CPU time hardly moves when other processes compete
for the cores, wall time does, so on a busy machine the CPU ratio is the steadier one. Each
WebSocket route handler's CPU ratio is held to a target of at most 1.3× (`OK`/`OVER`).

Further rows: the time a fresh process then spends creating its DynamoDB client (botocore
loads its service model on the first client, before any request; with EMF no request-path
function creates a CloudWatch client); the `$connect` and `joinSession` imports with
everything the archive ships compiled from source, as happens on Lambda (the archive has no
`.pyc` files and the code directory is read-only, so nothing is cached between cold starts):
a fresh `-X pycache_prefix` directory holds bytecode for the standard library and boto3's
closure only, and the timed process reads it with `-B`, sampled alternately with the normal
import; and where the slowest handler's import time goes according to `-X importtime`, each
module's self time charged to the package our code imported (asyncio pulled in by loguru
counts as loguru).

### 3. Package size

`components.packaging.build_lambda_archive()` builds (or reuses, from its content-hash cache
under `build/lambda/`) the one deployment archive every function shares: `runtime/` plus the
`uv.lock`-pinned dependencies for arm64 / Python 3.12, without boto3 (the Lambda runtime
provides it). Zipped is the file's size; unzipped is the sum of the entries' sizes. The
largest top-level entries show where the bytes come from.

### 4. Fan-out with a modelled round trip

On 127.0.0.1 a post to the local gateway costs about a millisecond of CPU and no network wait,
so concurrency cannot show what it buys on AWS, where each `PostToConnection` is a network
round trip. Here the same N posts go to `bench/connections_server.py` configured to hold each
request for 10 ms before answering: once in a `post_to_connection` loop, once through the
service's own `runtime.fanout.fan_out` (its thread pool, its boto3 client configuration).
"In flight at most" is what the server observed.

### 5. Through the local stack

`python -m local` runs as a subprocess (`local/process.py` starts it on free 127.0.0.1 ports)
with the per-client limits raised (`--set maxListenersPerSession=1000
listenerJoinsPerMinute=100000 connectionAttemptsPerMinute=100000 heartbeatsPerMinute=100000
sessionsPerHour=1000`), since every client shares one IP address. The clients run in the
bench process on one asyncio loop with the `websockets` client (no compression: API Gateway
does not negotiate it). The local stack runs the gateway and every function invocation (a
pool of threads) in one Python process and the embedded AWS (moto) in another, and the
clients share the same two cores. These numbers therefore show the emulation's throughput on
this machine, an upper bound on what the service's code costs, not what AWS would show,
where each invocation gets its own Lambda environment. A warm-up session (3 listeners, not
reported) runs first, so handler imports and client creation are not in the samples.

- **Join latency**: N listeners connect first (not timed), then all N send `joinSession` to one
  session at the same moment; each client measures from its send to its `sessionJoined` reply.
  Nearest-rank percentiles over the N samples.
- **Heartbeat round trip**: send → `heartbeatAck`, once with one request in flight at a time
  (the unloaded cost) and once with 10 in flight, round-robin over the joined listeners.
- **Fan-out, real path**: the speaker closes its WebSocket; the clock runs from just before the
  close until the last of the N listeners has received `sessionEnded`: the gateway's
  `$disconnect`, the handler ending the session, querying the listeners, posting to them
  concurrently through the @connections API and deleting their records.
- **Sequential baseline and its concurrent twin**: before the speaker leaves, the bench queries
  the same listeners' connection IDs from the stack's DynamoDB (the GSI the handler uses) and
  posts a `sessionEnded` message to each with boto3's `apigatewaymanagementapi`
  `post_to_connection`, one after another, through the stack's @connections API, exactly what
  a non-concurrent fan-out would do. Then the same query and posts again, through
  `runtime.fanout.fan_out`. The clock runs from the query until the last listener has received
  the message (each phase's message carries its own timestamp, so the phases are told apart);
  "sender done" is when the sending code returned. Same process, same clients, same query: the
  only difference between the two rows is sequential versus concurrent posting.

### 5b. Rehearsal of an event

`bench/rehearsal.py` starts a local stack of its own with the committed dev settings and
`--alarm-time-scale 60` (connections age 60 times faster: the refresh due at 100 minutes
comes after 100 s) and plays `python -m local rehearse` through it (`client/rehearsal.py`):
one speaker and 300 listeners, all from 127.0.0.1, join one session within 45 s; everyone
heartbeats every 20 s; each connection told `connectionRefreshRequired` opens a new
connection, refreshes onto it and closes the old one; then the speaker leaves. The rows:
joined and refused, join latency measured by the client (handshake + `joinSession`), the
refresh pushes (how many, over how long, their peak per second), the peak of new
connections per second, the alarms that fired and the listeners told `sessionEnded`.

### 6. Gateway handshake and message latency

`bench/gateway.py` measures the local gateway's HTTP/WebSocket stack one request at a time
(latency, not throughput; `python -m bench --only gateway` runs this section alone). First
the gateway alone (`bench/gateway_server.py`: the real `local.gateway.websocket.Gateway` in its own
process, with stand-in functions that answer at once, so no handler or DynamoDB time is in
the samples): a WebSocket handshake (TCP connect until the 101 is read; the close is not
timed), a frame's round trip on one connection (send until the route's reply is read) and an
@connections POST on one keep-alive HTTP connection (request until the 200 is read). Then the
whole local stack: a handshake that runs the real `$connect` (a DynamoDB write) and a
heartbeat's round trip through the real handler. Three warm-up requests of each kind are not
reported. The reference column shows the same rows as measured on the previous stack
(`BEFORE` in `bench/gateway.py`), so one run shows before and after.

Every sample that fails (an `error` reply, a timeout, a refused connection, a listener that
never hears `sessionEnded`) is counted in the table, never dropped; the stack's stderr is
scanned for handler failures, and its logs are kept for inspection.
"""


OBSERVATIONS = """\
- **Calls.** Every operation is within its budget. A speaker leaving a 500-listener session
  makes 528 calls, 500 of them `PostToConnection`: API Gateway has no broadcast, so one post
  per listener is the floor; the rest is 3 fixed calls, one `BatchGetItem` per 100 listener
  records (the listener index holds only keys and role, so the records it rewrites are read
  whole) and one `BatchWriteItem` per 25. A handshake from an address whose bucket is in use
  (a venue) is 3 calls: the idle-bucket write fails its condition, the in-use one takes the
  token.
- **Heartbeats write once.** A heartbeat is one write unit: the Connections index projects
  keys and `role` only, so `lastSeenAt` and the minute's counter no longer write it (two
  units each when it projected `ALL`). Per 1,000 listener-hours that is 120,000 index writes
  saved; the index writes left are a join's and a leave's (4 per listener-hour). The Logs row
  now counts every line (INFO, EMF, Lambda's START/END/REPORT), not only the EMF bytes.
- **Refresh wave.** Without the spread, an audience whose connections share an age — 5,000
  phones reconnecting together after a Wi-Fi blip, heartbeating in step — refreshes at the
  same moment 100 minutes later, at API Gateway's 500 new connections per second; with each
  connection's own offset in 15 minutes it peaks at a few tens per second.
- **Metrics cost no AWS call any more.** With `metricsTransport: emf` (the default) the
  metrics ride in one JSON log line per invocation and CloudWatch Logs extracts them, so every
  request path lost its `PutMetricData`: a heartbeat is one DynamoDB call, a join or a create
  three, a listener leaving two. The cost rows show what that is worth: per 1,000
  listener-hours, `PutMetricData` was about three quarters of the `api` bill, and the EMF
  bytes that replace it cost a few cents of Logs ingestion. The rest of the `emf` bill is
  mostly API Gateway messages (each heartbeat and its ack are two), then DynamoDB writes and
  Lambda requests; Lambda compute is small because every handler is a few milliseconds.
- **Cold start.** Every WebSocket route handler's import is within 1.3× of `import boto3`
  in CPU time, at about 1.2× (one run's median moves by about ±0.05 between runs on this
  shared machine). A listener's `$connect` imports neither PyJWT nor `cryptography` (only a
  token brings `runtime.auth` in), the ID word lists are read only by `create_session`, and
  the data files are read without `importlib.resources` (a test checks `sys.modules` in a
  fresh process). Two changes took the handlers from 1.3–1.35× to about 1.2×: every
  function's environment sets `LOGURU_AUTOINIT=False`, so loguru no longer builds its
  stderr handler at import only for the first invocation to remove it (about a third of
  loguru's import); and `runtime.handlers` imports boto3 first, at the shallowest call depth,
  because CPython frees a 16 KiB frame-stack chunk whenever the stack unwinds below it, and
  botocore's import run a few frames deeper mapped and unmapped that chunk thousands of times
  (strace: about 2,800–3,200 `mmap` calls for some handlers against about 200 for a bare
  `import boto3`). What a handler adds now is loguru with the asyncio it imports (about
  10 ms) and the service's own modules (about 9 ms, most of it building the contract modules'
  dataclasses). Creating the DynamoDB client costs about half a boto3 import again (botocore
  loads its service model). The archive still ships no bytecode, so on Lambda every cold
  start compiles `runtime/` and loguru (the "compiling what the archive ships" rows);
  compiling at build time with Python 3.12 and `compileall --invalidation-mode
  unchecked-hash` would remove that.
- **Package.** `cryptography` (with cffi) is about nine tenths of the archive; the service's
  code is under 1%. The archive is far below Lambda's limits, and at this size it is import
  time, not download size, that shapes a cold start, so splitting the package would buy
  little.
- **Fan-out.** With a modelled 10 ms round trip per post, `runtime.fanout.fan_out` is several
  times faster than a loop, but it never gets near its 32 workers in flight: each post costs
  about a millisecond of botocore CPU, so 500 posts take at least half a second on a full
  core, and about three times that on a 512 MB function (roughly a third of a vCPU). Giving
  the disconnect function more memory (1,769 MB is one full vCPU) is the cheap lever; past
  that, large sessions would fan out from several invocations. Through the local stack the
  concurrent and sequential fan-outs are close, because there every post is CPU work in the
  same single-process gateway on the same two cores: no network wait for concurrency to
  overlap.
- **Joins through the local stack** are bounded by the emulation, not by the service: the
  gateway and every function invocation share one Python interpreter (moto has another), on
  two cores shared with the clients, and it completes a few tens of joins per second, so the
  last of 500 simultaneous joins waits seconds in line. Any join that fails is counted as an
  error and ranks last in the percentiles. On AWS each invocation runs in its own
  environment, up to the account's concurrency limit.
- **Gateway stack.** The local gateway moved from the websockets library behind a
  hand-written HTTP/1.1 server to aiohttp's web server. The reference column holds the old
  stack's numbers from a quiet moment; measured back to back under the same load (two runs
  each, alternating, load average about 10 on 2 cores), the p50s were: handshake 1.0–1.2 ms
  before, 0.9–1.0 ms after; frame round trip 0.14–0.15 ms before, 0.12–0.14 ms after;
  @connections POST 0.14–0.16 ms before, 0.22–0.24 ms after; through the whole stack (real
  `$connect`, real heartbeat) the difference is within the noise. The handler and moto, not
  the HTTP stack, set the latency a client sees.
- **Noise.** The machine is shared (see the load average): import times and local-stack
  latencies move by tens of percent between runs, more than the ratios and the call counts.
"""
