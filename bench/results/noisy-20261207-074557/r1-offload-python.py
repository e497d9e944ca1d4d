Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    56.69ms  115.16ms   1.46s    97.65%
    Req/Sec   225.85    188.83   404.00     58.82%
  779 requests in 10.01s, 170.28KB read
  Socket errors: connect 0, read 0, write 0, timeout 26
Requests/sec:     77.81
Transfer/sec:     17.01KB
