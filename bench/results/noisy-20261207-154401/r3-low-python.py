Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   108.99ms  129.46ms 966.90ms   85.83%
    Req/Sec   239.81    364.05     1.06k    80.00%
  2388 requests in 10.01s, 513.84KB read
Requests/sec:    238.68
Transfer/sec:     51.36KB
