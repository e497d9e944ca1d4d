Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   102.36ms  123.93ms 927.80ms   86.19%
    Req/Sec   256.22    389.79     1.17k    81.00%
  2553 requests in 10.00s, 549.73KB read
Requests/sec:    255.25
Transfer/sec:     54.96KB
