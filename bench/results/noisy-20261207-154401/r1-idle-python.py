Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   118.46ms  323.94ms   1.83s    90.76%
    Req/Sec   555.70    551.12     1.19k    45.95%
  2077 requests in 10.01s, 454.06KB read
  Socket errors: connect 0, read 0, write 0, timeout 29
Requests/sec:    207.46
Transfer/sec:     45.35KB
