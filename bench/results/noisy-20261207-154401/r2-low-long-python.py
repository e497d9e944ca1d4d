Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    83.17ms   90.11ms 613.19ms   83.62%
    Req/Sec   274.82    397.70     1.19k    80.00%
  2740 requests in 10.00s, 587.80KB read
Requests/sec:    273.92
Transfer/sec:     58.76KB
