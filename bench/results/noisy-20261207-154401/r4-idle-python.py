Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   181.06ms  392.34ms   1.97s    87.25%
    Req/Sec   387.52    457.79     1.06k    68.75%
  1884 requests in 10.01s, 411.90KB read
  Socket errors: connect 0, read 0, write 0, timeout 29
Requests/sec:    188.12
Transfer/sec:     41.13KB
