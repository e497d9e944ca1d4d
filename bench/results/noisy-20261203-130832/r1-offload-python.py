Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   330.72ms  330.76ms   1.99s    84.66%
    Req/Sec    62.82     81.47   303.00     85.34%
  735 requests in 12.04s, 161.00KB read
Requests/sec:     61.03
Transfer/sec:     13.37KB
