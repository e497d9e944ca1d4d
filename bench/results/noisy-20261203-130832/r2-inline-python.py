Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    65.75ms   24.62ms 166.74ms   81.50%
    Req/Sec   244.23     40.10   343.00     70.00%
  2924 requests in 12.02s, 639.77KB read
Requests/sec:    243.19
Transfer/sec:     53.21KB
