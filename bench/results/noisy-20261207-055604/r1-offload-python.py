Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   276.81ms  269.76ms   1.60s    77.19%
    Req/Sec    73.14     98.49   350.00     83.19%
  871 requests in 12.01s, 185.65KB read
Requests/sec:     72.50
Transfer/sec:     15.45KB
