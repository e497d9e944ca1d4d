Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    47.27ms   12.91ms  94.95ms   69.20%
    Req/Sec   339.64     51.63   454.00     65.83%
  4062 requests in 12.02s, 813.99KB read
Requests/sec:    337.92
Transfer/sec:     67.72KB
