Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    66.50ms   23.09ms 146.88ms   77.76%
    Req/Sec   241.02     14.92   300.00     72.50%
  2886 requests in 12.02s, 631.31KB read
Requests/sec:    240.02
Transfer/sec:     52.50KB
