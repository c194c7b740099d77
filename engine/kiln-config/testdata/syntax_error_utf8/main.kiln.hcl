locals {
  greeting = "héllo wörld" ]
}
