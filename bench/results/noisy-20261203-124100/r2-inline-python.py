Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    75.95ms   30.07ms 245.48ms   80.26%
    Req/Sec   211.78     40.62   303.00     73.33%
  2541 requests in 12.05s, 555.84KB read
Requests/sec:    210.91
Transfer/sec:     46.14KB
