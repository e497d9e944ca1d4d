Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   101.57ms   59.18ms 472.36ms   77.75%
    Req/Sec   163.33     48.74   313.00     76.67%
  1956 requests in 12.02s, 427.88KB read
Requests/sec:    162.67
Transfer/sec:     35.58KB
