Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.80ms   11.39ms  89.41ms   70.38%
    Req/Sec   374.35     57.68   494.00     69.00%
  3730 requests in 10.01s, 747.60KB read
Requests/sec:    372.64
Transfer/sec:     74.69KB
