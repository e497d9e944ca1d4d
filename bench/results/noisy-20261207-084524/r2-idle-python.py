Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   127.55ms  295.67ms   1.93s    92.29%
    Req/Sec   178.02    179.04   404.00     73.17%
  750 requests in 10.02s, 164.04KB read
  Socket errors: connect 0, read 0, write 0, timeout 32
Requests/sec:     74.88
Transfer/sec:     16.38KB
