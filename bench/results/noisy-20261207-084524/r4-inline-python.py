Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    43.60ms   12.22ms 100.96ms   71.76%
    Req/Sec   367.48     60.43   535.00     71.00%
  3662 requests in 10.01s, 733.86KB read
Requests/sec:    365.78
Transfer/sec:     73.30KB
