Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   212.31ms  218.75ms   1.26s    82.50%
    Req/Sec   102.21    137.87   420.00     79.80%
  1011 requests in 10.00s, 216.72KB read
Requests/sec:    101.07
Transfer/sec:     21.67KB
