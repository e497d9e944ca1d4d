Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    91.05ms  222.58ms   1.99s    95.15%
    Req/Sec   186.71    174.77   390.00     34.21%
  724 requests in 10.01s, 158.21KB read
  Socket errors: connect 0, read 0, write 0, timeout 31
Requests/sec:     72.30
Transfer/sec:     15.80KB
