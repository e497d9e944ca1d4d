Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    50.77ms   15.14ms 151.41ms   66.01%
    Req/Sec   315.86     55.68   430.00     68.33%
  3779 requests in 12.01s, 757.54KB read
Requests/sec:    314.59
Transfer/sec:     63.06KB
