Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    88.86ms  102.19ms 632.88ms   85.18%
    Req/Sec   281.56    421.03     1.19k    80.00%
  2805 requests in 10.01s, 603.13KB read
Requests/sec:    280.35
Transfer/sec:     60.28KB
