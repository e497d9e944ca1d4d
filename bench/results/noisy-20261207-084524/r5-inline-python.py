Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    40.68ms   10.52ms  82.13ms   68.47%
    Req/Sec   393.18     51.86   545.00     63.00%
  3919 requests in 10.01s, 785.34KB read
Requests/sec:    391.48
Transfer/sec:     78.45KB
