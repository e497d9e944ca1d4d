Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   100.40ms  110.82ms 669.16ms   84.11%
    Req/Sec   234.35    344.02     1.04k    80.00%
  2333 requests in 10.01s, 501.10KB read
Requests/sec:    233.11
Transfer/sec:     50.07KB
