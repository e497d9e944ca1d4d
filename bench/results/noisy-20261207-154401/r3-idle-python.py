Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   180.83ms  349.30ms   1.99s    85.98%
    Req/Sec   440.40    467.25     1.05k    69.77%
  1925 requests in 10.02s, 420.89KB read
  Socket errors: connect 0, read 0, write 0, timeout 24
Requests/sec:    192.18
Transfer/sec:     42.02KB
