Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.03ms   11.34ms  79.41ms   68.35%
    Req/Sec   381.67     51.97   500.00     59.00%
  3804 requests in 10.01s, 762.49KB read
Requests/sec:    379.89
Transfer/sec:     76.15KB
