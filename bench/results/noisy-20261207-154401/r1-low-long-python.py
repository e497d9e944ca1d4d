Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    81.39ms   89.60ms 595.95ms   83.85%
    Req/Sec   287.76    420.63     1.23k    80.00%
  2863 requests in 10.01s, 614.81KB read
Requests/sec:    286.13
Transfer/sec:     61.44KB
