# wro sits behind an ISP router with a dynamic public address: its endpoint is a dynamic-DNS
# name that the endpoint beacon and reactor keep the tunnels pointed at; the router forwards
# UDP 51820 to pve-wro1.
evpn:
  sites:
    wro:
      network: 10.2.0.0/24
      nodes:
        pve-wro1:
          address: 10.2.0.1
          endpoint: wro.example.net
      vnets:
        wro1:
          tag: 12001
          subnets:
            10.2.1.0/24: {gateway: 10.2.1.1, snat: true}
      firewall:
        enable: true
        management: [192.168.1.0/24]
        nftables: false               # pve-firewall (iptables), PVE's default backend
