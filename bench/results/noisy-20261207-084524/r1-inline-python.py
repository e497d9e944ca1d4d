Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.25ms   13.50ms 100.18ms   68.96%
    Req/Sec   354.76     66.62   530.00     67.00%
  3536 requests in 10.01s, 708.84KB read
Requests/sec:    353.24
Transfer/sec:     70.81KB
