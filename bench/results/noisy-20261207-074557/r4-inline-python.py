Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    43.58ms   12.16ms  94.52ms   69.68%
    Req/Sec   367.71     57.69   464.00     62.00%
  3666 requests in 10.01s, 735.07KB read
Requests/sec:    366.14
Transfer/sec:     73.41KB
