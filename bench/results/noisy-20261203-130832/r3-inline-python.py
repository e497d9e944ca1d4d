Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    69.95ms   27.34ms 221.60ms   80.13%
    Req/Sec   229.90     43.61   330.00     71.67%
  2754 requests in 12.03s, 602.58KB read
Requests/sec:    228.92
Transfer/sec:     50.09KB
