Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   120.91ms  145.89ms 991.85ms   84.59%
    Req/Sec   232.57    366.86     1.02k    80.00%
  2317 requests in 10.01s, 499.72KB read
Requests/sec:    231.49
Transfer/sec:     49.93KB
