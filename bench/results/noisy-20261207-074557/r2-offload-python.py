Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   102.89ms  253.58ms   1.96s    93.59%
    Req/Sec   215.25    191.16   414.00     52.78%
  787 requests in 10.01s, 171.93KB read
  Socket errors: connect 0, read 0, write 0, timeout 25
Requests/sec:     78.60
Transfer/sec:     17.17KB
