Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   111.47ms  266.25ms   1.83s    93.04%
    Req/Sec   190.75    178.25   400.00     38.89%
  703 requests in 10.01s, 153.72KB read
  Socket errors: connect 0, read 0, write 0, timeout 28
Requests/sec:     70.22
Transfer/sec:     15.36KB
