} catch {
  $e = $_
  Out-Result @{ error = @{ message = $e.Exception.Message; category = [string]$e.CategoryInfo.Category; id = [string]$e.FullyQualifiedErrorId } }
  exit 1
}
