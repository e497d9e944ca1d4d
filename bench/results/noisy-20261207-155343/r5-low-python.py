Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    93.91ms  106.61ms 763.81ms   84.42%
    Req/Sec   261.47    388.91     1.17k    80.00%
  2604 requests in 10.00s, 560.44KB read
Requests/sec:    260.32
Transfer/sec:     56.03KB
