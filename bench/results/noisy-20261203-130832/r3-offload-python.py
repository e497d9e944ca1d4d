Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   373.45ms  374.70ms   1.92s    82.88%
    Req/Sec    60.73     79.89   290.00     81.13%
  652 requests in 12.03s, 142.77KB read
Requests/sec:     54.22
Transfer/sec:     11.87KB
