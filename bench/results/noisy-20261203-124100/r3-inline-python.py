Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    54.55ms   19.91ms 162.60ms   81.22%
    Req/Sec   294.46     37.46   373.00     62.50%
  3522 requests in 12.01s, 770.44KB read
Requests/sec:    293.25
Transfer/sec:     64.15KB
