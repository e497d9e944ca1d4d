Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.41ms   11.30ms  78.59ms   68.51%
    Req/Sec   378.13     52.99   505.00     66.00%
  3766 requests in 10.01s, 754.88KB read
Requests/sec:    376.23
Transfer/sec:     75.41KB
