Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   336.64ms  325.77ms   1.82s    78.55%
    Req/Sec    60.61     69.79   290.00     83.33%
  703 requests in 12.09s, 153.93KB read
Requests/sec:     58.15
Transfer/sec:     12.73KB
