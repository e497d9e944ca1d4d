Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   198.88ms  400.65ms   1.97s    85.87%
    Req/Sec   527.84    553.65     1.20k    69.77%
  2281 requests in 10.01s, 498.76KB read
  Socket errors: connect 0, read 0, write 0, timeout 28
Requests/sec:    227.78
Transfer/sec:     49.81KB
