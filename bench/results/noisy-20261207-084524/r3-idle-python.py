Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    79.61ms  190.10ms   1.90s    95.83%
    Req/Sec   188.16    175.70   393.00     44.74%
  727 requests in 10.01s, 158.92KB read
  Socket errors: connect 0, read 0, write 0, timeout 28
Requests/sec:     72.60
Transfer/sec:     15.87KB
