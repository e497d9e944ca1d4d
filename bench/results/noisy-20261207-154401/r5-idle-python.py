Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   182.78ms  379.20ms   2.00s    86.71%
    Req/Sec   444.70    481.10     1.07k    62.79%
  1937 requests in 10.01s, 423.62KB read
  Socket errors: connect 0, read 0, write 0, timeout 24
Requests/sec:    193.45
Transfer/sec:     42.31KB
