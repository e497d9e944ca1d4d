Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    97.66ms  241.83ms   1.93s    94.30%
    Req/Sec   210.28    187.85   400.00     52.78%
  770 requests in 10.01s, 168.29KB read
  Socket errors: connect 0, read 0, write 0, timeout 22
Requests/sec:     76.90
Transfer/sec:     16.81KB
